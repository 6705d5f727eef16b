const { RandomForestRegression } = require('ml-random-forest');
const fs = require('fs');
const rows = fs.readFileSync('/work/shared/data/cmapss/train_FD001.txt','utf8').trim().split('\n').map(l=>l.trim().split(/\s+/).map(Number));
const units = new Map();
for (const r of rows) { if(!units.has(r[0])) units.set(r[0],[]); units.get(r[0]).push(r); }
const cols = [6,7,8,11,12,13,15,16,17,18,20,23,24].map(c=>c+1); // sensors 2,3,4,7,8,9,11,12,13,14,15,17,20,21 -> index = 5+s
const sens = [2,3,4,7,8,9,11,12,13,14,15,17,20,21].map(s=>4+s);
function feats(seq, i){ // seq rows, i index
  const f=[];
  for (const c of sens){
    const w=(n)=>seq.slice(Math.max(0,i-n+1),i+1).map(r=>r[c]);
    const w10=w(10), w30=w(30);
    const mean=a=>a.reduce((x,y)=>x+y,0)/a.length;
    const slope=a=>{const n=a.length; if(n<2) return 0; const mx=(n-1)/2, my=mean(a); let num=0,den=0; a.forEach((y,x)=>{num+=(x-mx)*(y-my);den+=(x-mx)**2}); return num/den;};
    f.push(mean(w10), mean(w30), slope(w30));
  }
  f.push(i+1);
  return f;
}
const CAP=125;
const ids=[...units.keys()];
const t0=Date.now();
let se=0,n=0, seAll=0,nAll=0;
for (let k=0;k<5;k++){
  const test=ids.filter((_,j)=>j%5===k), train=ids.filter((_,j)=>j%5!==k);
  const X=[],y=[];
  for(const u of train){const s=units.get(u); s.forEach((r,i)=>{ if(i%2===0){X.push(feats(s,i)); y.push(Math.min(CAP,s.length-1-i));}});}
  const rf=new RandomForestRegression({nEstimators:60, maxFeatures:0.4, replacement:true, seed:k+1, treeOptions:{minNumSamples:5, maxDepth: 14}, useSampleBagging:true});
  rf.train(X,y);
  // test: truncate each unit at random points (like test set)
  let rng=k*7+1; const rand=()=>{rng=(rng*1103515245+12345)%2147483648; return rng/2147483648;};
  for(const u of test){const s=units.get(u); for(let r=0;r<5;r++){ const rul=1+Math.floor(rand()*Math.min(150, s.length-31)); const i=s.length-1-rul; const p=rf.predict([feats(s,i)])[0]; se+=(p-Math.min(rul,CAP))**2; n++; seAll+=(p-rul)**2; nAll++; }}
  console.log('fold',k,Math.sqrt(se/n).toFixed(2), Math.sqrt(seAll/nAll).toFixed(2), ((Date.now()-t0)/1000).toFixed(1)+'s');
}
